"""Dataset analyses on a Dask cluster: ``ftracekit.dask.top(dataset, client=client)``.

The same code runs on a laptop (``dask.distributed.LocalCluster``) and on a cluster (a
``Client("tcp://scheduler:8786")`` whose workers see the dataset's files at the same path);
see :mod:`ftracekit.dataset.dask_ops` and the README ("Datasets"). Needs
``pip install 'ftracekit[scale]'``.
"""

from .dataset.dask_ops import compare, read_calls, slowest, stats, top

__all__ = ["top", "stats", "slowest", "compare", "read_calls"]
