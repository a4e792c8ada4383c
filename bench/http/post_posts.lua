-- POST /api/posts: a short text post, the same body every time.
wrk.method = "POST"
wrk.path = "/api/posts"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"text":"benchmark post: a line of text of a typical length for a social feed"}'
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
