import sys, time, torch, numpy as np
from sklearn.svm import LinearSVC
d = torch.load(sys.argv[1]); s = np.load("/tmp/cifar_small.npz")
ftr, fte = d["ftr"].double().numpy(), d["fte"].double().numpy()
m, sd = ftr.mean(0), np.sqrt(ftr.var(0) + 0.01)
ftr, fte = (ftr - m) / sd, (fte - m) / sd
for C in map(float, sys.argv[2:]):
    t = time.time(); svm = LinearSVC(C=C, loss="squared_hinge", dual=False, tol=1e-4, max_iter=2000).fit(ftr, s["y_train"])
    print(f"RESULT svm {sys.argv[1]} C_sk {C}: test accuracy {(svm.predict(fte) == s['y_test']).mean():.3f} ({time.time()-t:.0f} s)", flush=True)
