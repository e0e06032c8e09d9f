"""The small split's images compressed once more as JPEG at quality Q (4:2:0), saved as an npz."""
import io, sys
import numpy as np
from PIL import Image
q = int(sys.argv[1]); d = np.load("/tmp/cifar_small.npz")
def again(x):
    out = np.empty_like(x)
    for i, im in enumerate(x):
        buf = io.BytesIO(); Image.fromarray(im).save(buf, "JPEG", quality=q, subsampling=2); buf.seek(0)
        out[i] = np.asarray(Image.open(buf).convert("RGB"))
    return out
np.savez(f"/tmp/ref/small_q{q}.npz", x_train=again(d["x_train"]), y_train=d["y_train"], x_test=again(d["x_test"]), y_test=d["y_test"])
