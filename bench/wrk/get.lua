-- wrk cross-check of a GET scenario (discovery); prints the same WRK_JSON line as cc_basic.lua.
done = function(summary, latency, requests)
  io.write(string.format("WRK_JSON {\"requests\": %d, \"duration_us\": %d, \"p50_us\": %d, \"p99_us\": %d, " ..
    "\"errors_status\": %d, \"errors_connect\": %d, \"errors_timeout\": %d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect, summary.errors.timeout))
end
