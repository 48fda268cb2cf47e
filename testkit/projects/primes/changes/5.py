"""Counts the primes below n: the program the experiment makes faster."""


def count_primes(n):
    if n <= 2:
        return 0
    # The sieve of Eratosthenes: cross out the multiples of each prime up to the root.
    sieve = bytearray([1]) * n
    sieve[0:2] = b"\x00\x00"
    for p in range(2, int(n**0.5)):
        if sieve[p]:
            sieve[p * p :: p] = bytes(len(range(p * p, n, p)))
    return sum(sieve)
