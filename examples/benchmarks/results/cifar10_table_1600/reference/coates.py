"""Reference: Coates, Lee & Ng 2011 k-means pipeline written independently (their MATLAB code's steps),
against layerwise's patch-kmeans, on the small CIFAR split (10k train / 2k test), all labels, 1600 features."""
import sys, time, json
import numpy as np, torch, torch.nn.functional as F
sys.path.insert(0, "/work/main/examples")
from finetune.training.probe import fit_linear_head
from cifar10_table import linear_head
torch.manual_seed(0); rng = np.random.default_rng(0)
K, NP, ITERS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
d = np.load("/tmp/cifar_small.npz")
xtr = torch.from_numpy(d["x_train"]).permute(0, 3, 1, 2).double()  # 0..255
xte = torch.from_numpy(d["x_test"]).permute(0, 3, 1, 2).double()
ytr, yte = torch.from_numpy(d["y_train"]), torch.from_numpy(d["y_test"])
# patches: random image, random position, 6x6x3 in unfold order
i = rng.integers(len(xtr), size=NP); r = rng.integers(27, size=NP); c = rng.integers(27, size=NP)
P = torch.stack([xtr[a, :, b:b + 6, e:e + 6].reshape(-1) for a, b, e in zip(i, r, c)])
def norm(p):
    return (p - p.mean(1, keepdim=True)) / torch.sqrt(p.var(1, keepdim=True) + 10)
P = norm(P)
M = P.mean(0); C = torch.cov(P.T); D, V = torch.linalg.eigh(C)
W = V @ torch.diag(1 / torch.sqrt(D + 0.1)) @ V.T
P = ((P - M) @ W).float()
def kmeans(X, k, iters):
    cent = torch.randn(k, X.shape[1]) * 0.1
    for it in range(iters):
        c2 = 0.5 * cent.pow(2).sum(1)
        S = torch.zeros_like(cent); cnt = torch.zeros(k); loss = 0.0
        for s in range(0, len(X), 50000):
            x = X[s:s + 50000]
            val, lab = (x @ cent.T - c2).max(1)
            loss += float((x.pow(2).sum(1) * 0.5 - val).sum())
            S.index_add_(0, lab, x); cnt += torch.bincount(lab, minlength=k).float()
        cent = S / cnt[:, None].clamp(min=1); cent[cnt == 0] = 0
        print(f"iter {it} objective per unit {2 * loss / X.numel():.4f} empty {(cnt == 0).sum()}", flush=True)
    return cent
t = time.time(); cent = kmeans(P, K, ITERS); print("kmeans", time.time() - t)
def features(x, cent, M, W):
    out = []
    Wf, Mf = W.float(), M.float()
    for s in range(0, len(x), 100):
        p = F.unfold(x[s:s + 100].float(), 6).transpose(1, 2)  # [n,729,108]
        p = norm(p.double()).float()
        p = (p - Mf) @ Wf
        z = torch.cdist(p, cent[None].expand(len(p), -1, -1)) if False else (p.pow(2).sum(-1, keepdim=True) - 2 * p @ cent.T + cent.pow(2).sum(1)).clamp(min=0).sqrt()
        f = (z.mean(-1, keepdim=True) - z).clamp(min=0).reshape(len(p), 27, 27, -1)
        q = torch.stack([f[:, :14, :14].sum((1, 2)), f[:, :14, 14:].sum((1, 2)), f[:, 14:, :14].sum((1, 2)), f[:, 14:, 14:].sum((1, 2))], 1)
        out.append(q.reshape(len(p), -1))
    return torch.cat(out)
t = time.time(); ftr, fte = features(xtr, cent, M, W), features(xte, cent, M, W); print("encode", time.time() - t)
torch.save({"cent": cent, "M": M, "W": W, "ftr": ftr, "fte": fte}, f"/tmp/ref/ref_{K}_{ITERS}.pt")
for Cv in (1e-3, 1e-2, 1e-1, 1.0):
    head = linear_head(ftr.shape[1], 10)
    fit_linear_head(head, ftr, ytr, 10, C=Cv, precision=torch.float32)
    with torch.no_grad(): acc = float((head(fte).argmax(1) == yte).double().mean())
    print(f"RESULT reference K {K} iters {ITERS} C {Cv}: test accuracy {acc:.3f}", flush=True)
