"""Counts the primes below n: the program the experiment makes faster."""


def count_primes(n):
    if n <= 2:
        return 0
    count = 1  # 2, the only even prime; then odd numbers, tried by odd divisors
    for k in range(3, n, 2):
        d = 3
        while d * d <= k:
            if divmod(k, d)[1] == 0:
                break
            d += 2
        else:
            count += 1
    return count
