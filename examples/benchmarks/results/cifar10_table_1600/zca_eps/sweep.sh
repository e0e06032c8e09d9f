cd /work/main/examples/benchmarks/results/cifar10_table_1600/reference
for eps in 0.1 0.01 0.3 1.0 0.03; do
  python ours.py "patch-kmeans:1600,patches=100000,epochs=10,zca_eps=$eps" km_zca$eps > /tmp/zca/zca$eps.log 2>&1
done
echo finished > /tmp/zca/done
