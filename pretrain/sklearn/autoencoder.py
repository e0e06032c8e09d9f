"""The ``ae`` layer as a scikit-learn transformer."""
from ..core.errors import LayerwiseError
from ._base import _LayerTransformer, observed_range


class Autoencoder(_LayerTransformer):
    """One autoencoder layer (``pretrain -l ae``): plain, denoising, sparse or contractive.

    Code ``h = act(W x + c)``, reconstruction ``W' h + b`` (``W' = W^T`` when
    ``tied``), trained with Adam on the reconstruction of the clean input from
    the code of the corrupted one (Vincent et al. 2008) plus the optional
    sparsity (Ng 2011) and contractive (Rifai et al. 2011) penalties. With
    ``loss="auto"`` inputs in [0, 1] get cross-entropy and others squared error;
    ``loss="ce"`` requires inputs in [0, 1].

    Parameters: ``n_components`` (256), ``learning_rate`` (0.001, the kind's
    default), ``batch_size`` (100), ``n_iter`` (10), then every option of the
    ``ae`` kind with its default and valid range (``pretrain --list-layers``),
    then ``verbose``, ``random_state`` and ``device`` (``cpu``, ``cuda`` or ``auto``).
    """

    kind = "ae"

    def _input_range(self, x):
        input_range = observed_range(x)
        if self.loss == "ce" and input_range != "unit":
            raise LayerwiseError("Autoencoder(loss='ce') needs inputs in [0, 1]: scale them first "
                                 "(e.g. MinMaxScaler) or use loss='mse'")
        return input_range
