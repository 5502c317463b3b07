"""On-device power: sensors (sensors.py), their parsers (parsers.py), the sampler that runs beside the
runner (session.py + templates/power_sampler.py.j2), the numbers (analysis.py) and the plot (plot.py)."""

from .config import PowerConfig
from .sensors import SENSORS, PowerSensor, get_sensor

__all__ = ["SENSORS", "PowerConfig", "PowerSensor", "get_sensor"]
