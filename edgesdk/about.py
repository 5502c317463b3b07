"""The installed edgesdk version (from package metadata, so it is defined in one place: pyproject.toml)."""

from importlib.metadata import PackageNotFoundError, version as _dist_version


def version() -> str:
    try:
        return _dist_version("edgesdk")
    except PackageNotFoundError:
        return "0+unknown"
