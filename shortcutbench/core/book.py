"""The book's printed numbers for its own example (ch. 4.4).

Depth 5, width 3, seed 123, input [1, 0, -1], CPU float32: mean |grad| of
layers.{0..4}.0.weight.  The book's ch04 code run on torch 2.13.0 gives the
values below bit for bit; the notebook's two printings (both made with torch
2.2.1) differ from each other by at most 2 ulp and from these by at most 4
(different CPU kernels), so they are compared with a relative tolerance.
"""

# The book's example cell: nn.Linear's own init, no normalisation, and
# (where the shortcut is on) the plain x + layer(x), lambda = 1.
BOOK_CASE = {"depth": 5, "width": 3, "seed": 123, "activation": "gelu_tanh",
             "init": "pytorch", "norm": "none", "device": "cpu", "dtype": "float32"}

BOOK_GRADIENTS = {
    False: [0.00020173587836325169, 0.00012011159560643137, 0.0007152039906941354,
            0.0013988736318424344, 0.005049645435065031],
    True: [0.22169792652130127, 0.20694106817245483, 0.32896995544433594,
           0.2665732204914093, 1.3258540630340576],
}

RTOL = 1e-6
