"""Reading what users bring: expression, gene identifiers, published NK-screen files, labels.

- :mod:`nkpredict.data.expression` reads expression files and brings them to one scale;
- :mod:`nkpredict.data.identifiers` maps gene identifiers to HGNC symbols;
- :mod:`nkpredict.data.annotation` is the gene annotation those mappings use;
- :mod:`nkpredict.data.public` reads the published NK-screen layouts;
- :mod:`nkpredict.data.labels` turns a readout into training labels.
"""
