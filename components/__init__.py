"""The CodeInterpreterPool component, its settings and the component package that hosts it."""

# The one version number of the component package (package/CHANGELOG.md, the release tag v<version>).
__version__ = "0.1.0"
