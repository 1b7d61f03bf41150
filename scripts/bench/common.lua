-- Shared by create.lua and status.lua (loaded with dofile from the same directory).
--
-- Every thread counts the answers outside 2xx (wrk itself counts only >= 400, and only
-- socket errors in summary.errors); done() adds them up and prints one line that
-- smartpay-bench parses:
--   wrk-result requests=N non2xx=N connect=N read=N write=N timeout=N duration_us=N
--              p50_us=N p99_us=N p999_us=N max_us=N
-- Threads are numbered in setup() (the global `index` of each thread's own Lua state), so a
-- script can give threads different Authorization values.

local threads = {}

function setup(thread)
   thread:set("index", #threads)
   table.insert(threads, thread)
end

non2xx = 0

-- Called by each thread for every answer (defining it makes wrk hand the answer to Lua).
-- A script may set `on_success(body)` to look at the 2xx bodies.
function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   elseif on_success then
      on_success(body)
   end
end

-- Threads' values of a global, for done() (which runs in the main Lua state).
function each_thread(name, f)
   for _, t in ipairs(threads) do
      f(t:get(name))
   end
end

function done(summary, latency, requests)
   local bad = 0
   each_thread("non2xx", function(n) bad = bad + n end)
   if finish then
      finish()
   end
   local e = summary.errors
   io.write(string.format(
      "wrk-result requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d duration_us=%d " ..
      "p50_us=%d p99_us=%d p999_us=%d max_us=%d\n",
      summary.requests, bad, e.connect, e.read, e.write, e.timeout, summary.duration,
      latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
