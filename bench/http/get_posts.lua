-- GET /api/posts: the feed's first 20-item page, as a signed-in client reads it.
wrk.method = "GET"
wrk.path = "/api/posts?limit=20"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
