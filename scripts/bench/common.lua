-- Shared by create.lua and status.lua (loaded with dofile from the same directory).
--
-- Every thread counts the answers outside 2xx (wrk itself counts only >= 400, and only
-- socket errors in summary.errors); done() prints each thread's first such answer
-- (`wrk-first-non2xx STATUS BODY…`, which smartpay-bench shows), adds them up and prints one
-- line that smartpay-bench parses:
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
first_non2xx = nil

-- Called by each thread for every answer (defining it makes wrk hand the answer to Lua).
-- A script may set `on_success(body)` to look at the 2xx bodies. The first answer outside 2xx
-- of each thread is kept (status and the body's start) and printed by done(), so a run with
-- errors says what they were.
function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if not first_non2xx then
         first_non2xx = status .. " " .. string.sub(string.gsub(body or "", "%s+", " "), 1, 300)
      end
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
   each_thread("first_non2xx", function(first)
      if first then
         io.write("wrk-first-non2xx " .. first .. "\n")
      end
   end)
   local e = summary.errors
   io.write(string.format(
      "wrk-result requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d duration_us=%d " ..
      "p50_us=%d p99_us=%d p999_us=%d max_us=%d\n",
      summary.requests, bad, e.connect, e.read, e.write, e.timeout, summary.duration,
      latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
