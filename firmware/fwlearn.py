# The on-board update rule of feeling (docs/feeling.md), split from fwtrain
# so each module compiles in the V1's small heap. Normalised LMS on log-gains
# c, readout a, bias b (exponents fixed): r = mu / (1 + sum_k phi_k^2 (1 +
# |a_k|^2)), a bound of the largest eigenvalue of J J^T, so any mu in (0, 2)
# is stable (a fixed-rate SGD step diverged on the V1). A plain step on c is
# the exponentiated (relative) step on the gain e^c. Parameters are read and
# written in place in the .ndm bytes B (the asm forward pass reads a and b
# there; its gains e^c live in m.g and are refreshed here).
from math import exp
from struct import pack_into as pk, unpack_from as up


def f(B, o):
    return up('<f', B, o)[0]


def learn(m, B, O, ph, v, y, mu):
    # one step from raw inputs v (then targets); y = prediction - target
    d, e, k = B[6], B[7], B[8]
    q = O[k]
    for i in range(e):
        y[i] = f(B, q + 4 * i) - v[d + i]
    p = 10 + 8 * d
    n = 1.0
    for a in range(k):
        u = exp(f(B, O[a]))
        for t in range(B[p]):
            j = B[p + 1 + 2 * t]
            x = f(B, 14 + 8 * j) * (v[j] - f(B, 10 + 8 * j))
            w = B[p + 2 + 2 * t]
            if w > 127:
                x = 1 / x
            u *= x if w in (1, 255) else x * x
        p = O[a] + 4 + 4 * e
        ph[a] = u
        q = 1.0
        for i in range(e):
            x = f(B, O[a] + 4 + 4 * i)
            q += x * x
            y[i] += x * u
        n += u * u * q
    r = mu / n
    for a in range(k):
        q = O[a]
        g = 0.0
        for i in range(e):
            x = f(B, q + 4 + 4 * i)
            g += y[i] * x
            pk('<f', B, q + 4 + 4 * i, x - r * y[i] * ph[a])
        c = f(B, q) - r * g * ph[a]
        if -80 < c < 80:
            pk('<f', B, q, c)
            if hasattr(m, 'g'):
                m.g[a] = exp(c)
    q = O[k]
    for i in range(e):
        pk('<f', B, q + 4 * i, f(B, q + 4 * i) - r * y[i])
