-- wrk script: Create Checkout (POST /payment/creation) with a fixed JSON body.
--
--   wrk -t T -c C -d D -s scripts/bench/create.lua BASE_URL -- BODY_FILE IDS_OUT [AUTH ...]
--
-- BODY_FILE holds the request body. IDS_OUT ("-" for none) receives the transactionIds of the
-- checkouts created (up to 25,000 per thread, one a line), for status.lua. Each thread sends
-- one of the AUTH values as its Authorization header, in turn (none when there is none).

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local KEEP = 25000

wrk.method = "POST"
wrk.path = "/payment/creation"
wrk.headers["Content-Type"] = "application/json"

ids = {}

function init(args)
   -- args[0] is the URL; the script's own arguments follow.
   local f = assert(io.open(args[1], "rb"))
   wrk.body = f:read("*a")
   f:close()
   ids_out = args[2]
   if #args >= 3 then
      wrk.headers["Authorization"] = args[3 + index % (#args - 2)]
   end
end

function on_success(body)
   if #ids < KEEP then
      local id = body:match('"transactionId"%s*:%s*"([^"]+)"')
      if id then
         ids[#ids + 1] = id
      end
   end
end

function finish()
   local out
   each_thread("ids_out", function(path) out = path end)
   if not out or out == "-" then
      return
   end
   local f = assert(io.open(out, "w"))
   each_thread("ids", function(list)
      for _, id in ipairs(list) do
         f:write(id, "\n")
      end
   end)
   f:close()
end
