"""Specs: what the user declares, validated before anything runs.

- :mod:`~tuner.specs.spec`: study specs (``studies/*.yaml``).
- :mod:`~tuner.specs.space`: importance-ranked search spaces (``search_spaces/*.yaml``).
- :mod:`~tuner.specs.validation`: names, YAML reading and one-line error messages.
- :mod:`~tuner.specs.plugins`: a user's ``module:function`` (data source, model builder).

This stage knows nothing of Keras, of the search, or of storage.
"""
