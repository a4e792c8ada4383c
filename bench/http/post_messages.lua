-- POST /api/chats/{id}/messages with a unique clientId per request (thread
-- number, counter and a per-run tag), as a client that may retry sends them;
-- BENCH_CLIENT_ID=0 sends none.
local chat = os.getenv("BENCH_CHAT_ID")
local run = os.getenv("BENCH_RUN") or "r"
local with_id = os.getenv("BENCH_CLIENT_ID") ~= "0"
local path = "/api/chats/" .. chat .. "/messages"
local headers = {
   ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
   ["Content-Type"] = "application/json",
}
local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("tid", threads)
end

local n = 0
function request()
   n = n + 1
   local body
   if with_id then
      body = string.format('{"text":"benchmark message %d","clientId":"%s-%d-%d"}', n, run, tid, n)
   else
      body = string.format('{"text":"benchmark message %d"}', n)
   end
   return wrk.format("POST", path, headers, body)
end

dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
