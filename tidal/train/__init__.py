"""Model families, candidate search, evaluation per slice and the validation gate.

Pure library code: nothing here touches the metadata store, the artifact store or the
pipeline engine, so each piece can be tested on plain data frames and wired into steps
by the pipeline. Importing this package is cheap; scikit-learn loads when a submodule
that needs it is imported (``tidal.train.candidates``, ``tidal.train.evaluate``).

- :mod:`tidal.train.candidates`: one scikit-learn pipeline (preprocessing + model) per
  family, seeded and deterministic, and a budgeted hyperparameter search.
- :mod:`tidal.train.evaluate`: metrics and the error-analysis table per slice.
- :mod:`tidal.train.gate`: bless or veto a candidate, with every reason, and choose
  between candidates preferring the simpler model.
"""
