"""Import shim: FunkLoad's package name, served by `marteau.funkload`.

Unlike FunkLoad, importing it does not monkey-patch with gevent: Marteau's
bench engine runs virtual users itself.
"""
