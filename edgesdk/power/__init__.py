"""On-device power: sensors (sensors.py), their parsers (parsers.py), the sampler that runs beside the
runner (session.py + templates/power_sampler.py.j2), the numbers (analysis.py) and the plot (plot.py)."""

from .config import PowerConfig

__all__ = ["SENSORS", "PowerConfig", "PowerSensor", "get_sensor"]


def __getattr__(name: str):
    # The sensors pull in numpy: loaded on first use, so reading devices.yaml stays light.
    if name in ("SENSORS", "PowerSensor", "get_sensor"):
        from . import sensors

        return getattr(sensors, name)
    raise AttributeError(name)
