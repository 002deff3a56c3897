-- wrk cross-check of the cc_basic scenario (client_credentials, client_secret_basic).
-- The Authorization header comes from the environment so no secret is written here:
--   FINGRADE_BENCH_BASIC="Basic $(printf 'demo-backend:SECRET' | base64 -w0)" \
--   taskset -c 1 wrk -t1 -c32 -d10s --latency -s bench/wrk/cc_basic.lua https://localhost:PORT/token
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=accounts"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("FINGRADE_BENCH_BASIC")

done = function(summary, latency, requests)
  io.write(string.format("WRK_JSON {\"requests\": %d, \"duration_us\": %d, \"p50_us\": %d, \"p99_us\": %d, " ..
    "\"errors_status\": %d, \"errors_connect\": %d, \"errors_timeout\": %d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect, summary.errors.timeout))
end
