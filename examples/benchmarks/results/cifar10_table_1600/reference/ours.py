import sys, time
sys.path.insert(0, "/work/main/examples")
import numpy as np, torch
import pretrain
from cifar10_table import features_of, linear_head
from finetune.networks.sources import load_source
from finetune.training.probe import fit_linear_head
spec = sys.argv[1]; name = sys.argv[2]
ds = pretrain.load_data(sys.argv[3] if len(sys.argv) > 3 else "npz:/tmp/cifar_small.npz")
out = f"/tmp/ref/{name}"
pretrain.pretrain_stack(ds, [spec], out=out, epochs=10, resume=True, progress=False)
tr, te, s = features_of(load_source(out, ds), ds, "")
torch.save({"ftr": tr, "fte": te}, f"/tmp/ref/feat_{name}.pt")
ytr, yte = torch.from_numpy(ds.y_train.astype(np.int64)), torch.from_numpy(ds.y_test.astype(np.int64))
for Cv in (1e-3, 1e-2, 1e-1, 1.0):
    head = linear_head(tr.shape[1], 10)
    fit_linear_head(head, tr, ytr, 10, C=Cv, precision=torch.float32)
    with torch.no_grad(): acc = float((head(te).argmax(1) == yte).double().mean())
    print(f"RESULT ours {name} C {Cv}: test accuracy {acc:.3f}", flush=True)
