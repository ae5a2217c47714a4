"""Build of the optional compiled page decoder (ftracekit/_cext.c).

The metadata is in setup.cfg. The extension is optional: without a C compiler (or Python's
headers) the install still succeeds and ftracekit decodes binary captures with its numpy
walker (ftracekit/read/_pages.py), which gives the same records, only slower.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ftracekit._cext", ["ftracekit/_cext.c"],
                             extra_compile_args=["-O2"], optional=True)])
