"""Coates et al.'s head on the full-size features: a one-vs-rest L2-SVM (squared hinge), features standardised
with sd sqrt(var + 0.01), their C = 100 on the mean loss, i.e. scikit-learn's C = 100 / n."""
import sys, time, torch, numpy as np
from sklearn.svm import LinearSVC
d = torch.load(sys.argv[1])
ftr, fte = d["train"].numpy(), d["test"].numpy()
m, sd = ftr.mean(0), np.sqrt(ftr.var(0) + 0.01)
ftr = (ftr - m) / sd; fte = (fte - m) / sd
for C in map(float, sys.argv[2:]):
    t = time.time(); svm = LinearSVC(C=C / len(ftr), loss="squared_hinge", dual=False, tol=1e-4, max_iter=2000).fit(ftr, d["y_train"].numpy())
    print(f"RESULT svm {sys.argv[1]} C {C} (C_sk {C / len(ftr):g}): test accuracy {(svm.predict(fte) == d['y_test'].numpy()).mean():.4f} ({time.time()-t:.0f} s)", flush=True)
