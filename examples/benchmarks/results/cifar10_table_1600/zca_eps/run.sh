cd /work/main
for l in kmeans ae rbm; do
  python examples/cifar10_table.py npz:/tmp/cifar10.npz -o /tmp/zfull/$l --labels-per-class all --learners $l --controls "" --no-pixels --layer-options zca_eps=0.3 > /tmp/zfull/$l.log 2>&1
done
echo finished > /tmp/zfull/done
