# Baseline for `ndyn bench device`: a dense one-hidden-layer ReLU MLP in
# plain MicroPython, y = W2 relu(W1 x + b1) + b2, as a user would write it.
# File: d_in, h, d_out (u8), pad, then float32 W1 (h x d_in), b1, W2
# (d_out x h), b2; input/output scaling is folded into the weights.
from array import array


class MLP:
    def load(self, name):
        f = open(name, 'rb')
        d = f.read(4)
        self.d_in, self.h, self.d_out = d[0], d[1], d[2]
        n = self.h * (self.d_in + 1 + self.d_out) + self.d_out
        self.w = array('f', [0.0] * n)
        f.readinto(self.w)
        f.close()
        self.z = array('f', [0.0] * self.h)

    def infer(self, x, y):
        w, z, di, do = self.w, self.z, self.d_in, self.d_out
        p = 0
        q = self.h * di
        for i in range(self.h):
            a = w[q + i]
            for j in range(di):
                a += w[p] * x[j]
                p += 1
            z[i] = a if a > 0.0 else 0.0
        p = q + self.h
        q = p + self.h * do
        for i in range(do):
            a = w[q + i]
            for j in range(self.h):
                a += w[p] * z[j]
                p += 1
            y[i] = a
        return 0
