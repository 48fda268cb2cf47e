"""The measurement: the median time of one count_primes(30000) call, in milliseconds, over
calls repeated for at least 0.3 s (so a fast version is timed as steadily as a slow one).
Prints the time and the calls as one JSON line."""
import json
import statistics
import time

from primes import count_primes

N = 30_000
times = []
started = time.perf_counter()
while len(times) < 3 or time.perf_counter() - started < 0.3:
    t = time.perf_counter()
    count_primes(N)
    times.append((time.perf_counter() - t) * 1000)
print(json.dumps({"ms": round(statistics.median(times), 4), "calls": len(times)}))
