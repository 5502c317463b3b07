"""Every parser on golden captures of the real formats (tests/power/golden/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgesdk.errors import PowerError
from edgesdk.power import parsers

GOLDEN = Path(__file__).resolve().parent / "golden"


def lines(name: str) -> list[str]:
    return (GOLDEN / name).read_text().splitlines()


def tree(name: str, root: Path | None = None) -> dict[str, str]:
    """A golden sysfs tree as the sampler's snapshot gives it: {absolute path: text}."""
    base = GOLDEN / name
    return {str(p): p.read_text() for p in sorted(base.rglob("*")) if p.is_file()}


# -- tegrastats ---------------------------------------------------------------------------------------
def test_tegrastats_jetpack4_nano_total_is_pom_5v_in_and_sub_rails_are_not_added():
    first = lines("tegrastats_nano_jp4.txt")[0]
    assert "POM_5V_IN 4520/4680 POM_5V_GPU 0/0 POM_5V_CPU 1078/1205" in first  # the line, verbatim
    reading = parsers.parse_tegrastats(first)
    assert reading.total_w == pytest.approx(4.520)  # the current value, not the 4.680 average
    assert reading.total_source == "POM_5V_IN"
    assert reading.rails_w == pytest.approx({"POM_5V_IN": 4.520, "POM_5V_GPU": 0.0, "POM_5V_CPU": 1.078})
    loaded = [parsers.parse_tegrastats(line).total_w for line in lines("tegrastats_nano_jp4.txt")[1:]]
    assert loaded == pytest.approx([6.392, 6.471])


def test_tegrastats_ignores_memory_and_frequency_fields():
    reading = parsers.parse_tegrastats(lines("tegrastats_nano_jp4.txt")[0])
    assert not {"RAM", "SWAP", "IRAM", "EMC_FREQ", "GR3D_FREQ", "APE"} & set(reading.rails_w)


def test_tegrastats_tx2_vdd_in():
    first = lines("tegrastats_tx2.txt")[0]
    assert "VDD_IN 14025/14416 VDD_CPU 2209/2538" in first
    reading = parsers.parse_tegrastats(first)
    assert reading.total_w == pytest.approx(14.025) and reading.total_source == "VDD_IN"
    assert set(reading.rails_w) == {"VDD_IN", "VDD_CPU", "VDD_GPU", "VDD_SOC", "VDD_WIFI", "VDD_DDR"}
    assert reading.rails_w["VDD_GPU"] == pytest.approx(6.165)


def test_tegrastats_orin_with_milliwatt_units():
    last = lines("tegrastats_orin_nano.txt")[-1]
    assert "VDD_IN 17946mW/15710mW VDD_CPU_GPU_CV 8896mW/7585mW VDD_SOC 3923mW/3515mW" in last
    reading = parsers.parse_tegrastats(last)
    assert reading.total_w == pytest.approx(17.946)  # not 17.946 + 8.896 + 3.923
    assert reading.rails_w == pytest.approx({"VDD_IN": 17.946, "VDD_CPU_GPU_CV": 8.896, "VDD_SOC": 3.923})


def test_tegrastats_agx_orin_has_no_total_rail_so_rails_are_summed_and_said_so():
    reading = parsers.parse_tegrastats(lines("tegrastats_agx_orin.txt")[0])
    assert reading.total_w == pytest.approx(3.179 + 0.397 + 2.522 + 0.303)
    assert "NC" not in reading.rails_w
    assert reading.total_source.startswith("sum of VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0+VDDQ_VDD2_1V8AO")
    assert "no total" in reading.total_source


def test_tegrastats_line_without_rails_is_an_error():
    with pytest.raises(PowerError, match="no power rails"):
        parsers.parse_tegrastats("RAM 1616/3956MB (lfb 91x4MB) SWAP 0/1978MB CPU [21%@1479]")


# -- Raspberry Pi 5 -----------------------------------------------------------------------------------
def test_pmic_read_adc_pairs_currents_with_volts_by_rail_name():
    text = (GOLDEN / "pmic_read_adc_rpi5.txt").read_text()
    assert "  VDD_CORE_A current(7)=1.42880000A" in text and "     EXT5V_V volt(24)=5.05716000V" in text
    reading = parsers.parse_pmic_read_adc(text)
    assert reading.rails_w["VDD_CORE"] == pytest.approx(1.4288 * 0.7228)
    assert reading.rails_w["3V3_SYS"] == pytest.approx(0.0517244 * 3.304)
    assert len(reading.rails_w) == 12 and "EXT5V" not in reading.rails_w
    assert reading.total_w == pytest.approx(2.1436380, rel=1e-6)  # the 12 products of the capture
    assert reading.total_source.startswith("estimate: sum of 12 PMIC rails (3V7_WL_SW+3V3_SYS+")
    assert "5 V input current is not measured" in reading.total_source
    assert reading.notes == ["no current for BATT, EXT5V"]


def test_pmic_read_adc_without_pairs_is_an_error():
    with pytest.raises(PowerError, match="no current/voltage pairs"):
        parsers.parse_pmic_read_adc('error=1 error_msg="Command not registered"\n')


# -- INA3221 ------------------------------------------------------------------------------------------
def test_ina3221_hwmon_orin_nano_found_by_name_and_vdd_in_is_the_total():
    files = tree("sysfs_orin_nano")
    dirs = parsers.ina3221_dirs(files)
    assert [Path(d).name for d in dirs] == ["hwmon1"]
    reading = parsers.parse_ina3221({p: t for p, t in files.items() if p.startswith(dirs[0])})
    assert reading.total_w == pytest.approx(5.056 * 1.048) and reading.total_source == "VDD_IN"
    assert reading.rails_w == pytest.approx({"VDD_IN": 5.056 * 1.048, "VDD_CPU_GPU_CV": 5.048 * 0.224,
                                            "VDD_SOC": 5.048 * 0.296})  # no shunt channels, no sum channel


def test_ina3221_hwmon_agx_orin_two_chips_skips_nc_and_sums():
    files = tree("sysfs_agx_orin")
    dirs = parsers.ina3221_dirs(files)
    assert [Path(d).name for d in dirs] == ["hwmon1", "hwmon2"]
    reading = parsers.parse_ina3221({p: t for p, t in files.items() if any(p.startswith(d + "/") for d in dirs)})
    assert set(reading.rails_w) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"}
    assert reading.total_w == pytest.approx(5.016 * 0.634 + 5.016 * 0.080 + 5.008 * 0.504 + 5.008 * 0.060)
    assert "no total" in reading.total_source


def test_ina3221_iio_driver_of_jetpack4():
    files = tree("sysfs_nano_iio")
    dirs = parsers.ina3221_dirs(files)
    assert [Path(d).name for d in dirs] == ["iio:device0"]
    reading = parsers.parse_ina3221({p: t for p, t in files.items() if p.startswith(dirs[0])})
    assert reading.rails_w == pytest.approx({"POM_5V_IN": 4.520, "POM_5V_GPU": 0.0, "POM_5V_CPU": 1.078})
    assert reading.total_w == pytest.approx(4.520) and reading.total_source == "POM_5V_IN"


# -- generic hwmon --------------------------------------------------------------------------------------
def test_hwmon_power_input_in_microwatts():
    reading = parsers.parse_hwmon(tree("hwmon_ina226"))
    assert reading.total_w == pytest.approx(4.83) and reading.total_source == "power1"


def test_hwmon_voltage_times_current_when_there_is_no_power_file():
    reading = parsers.parse_hwmon(tree("hwmon_two_rails"))
    assert reading.rails_w == pytest.approx({"VIN_A": 12.0 * 0.5, "VIN_B": 5.0 * 0.3})
    assert reading.total_w == pytest.approx(7.5) and reading.total_source.startswith("sum of VIN_A+VIN_B")


def test_hwmon_without_power_files_is_an_error():
    with pytest.raises(PowerError, match="no power"):
        parsers.parse_hwmon({"/sys/class/hwmon/hwmon0/name": "k10temp\n", "/sys/class/hwmon/hwmon0/temp1_input": "41000\n"})


def test_hwmon_garbage_value_names_the_file():
    with pytest.raises(PowerError, match="power1_input: expected a number"):
        parsers.parse_hwmon({"/h/power1_input": "N/A\n"})


# -- RAPL -----------------------------------------------------------------------------------------------
def test_rapl_laptop_zones_psys_is_the_total():
    zones = parsers.rapl_zones(tree("sysfs_rapl_laptop"))
    assert [(Path(z.path).name, z.name, z.top_level) for z in zones] == [
        ("intel-rapl:0", "package-0", True), ("intel-rapl:0:0", "core", False), ("intel-rapl:0:1", "uncore", False),
        ("intel-rapl:1", "psys", True)]  # intel-rapl-mmio is the same package counted again: left out
    total, source = parsers.rapl_total(zones)
    assert [z.name for z in total] == ["psys"] and source == "psys"
    assert zones[0].max_energy_uj == 262143328850


def test_rapl_server_two_packages_summed_dram_subzones_not_added():
    total, source = parsers.rapl_total(parsers.rapl_zones(tree("sysfs_rapl_server")))
    assert [z.name for z in total] == ["package-0", "package-1"]
    assert source == "package-0+package-1 (CPU packages only: no psys zone)"


def test_rapl_energy_delta_wraps_at_max_range():
    assert parsers.energy_delta_uj(1_000, 4_000, 262143328850) == 3_000
    assert parsers.energy_delta_uj(262143328000, 150, 262143328850) == 850 + 150
    with pytest.raises(PowerError, match="backwards"):
        parsers.energy_delta_uj(10, 5, 0)


# -- external meter ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, unit, watts", [
    ("4.83\n", "W", 4.83),
    ("6500.0 mW\n", "mW", 6.5),
    ("meter v1.2 ready\nP=12.5 W\n", "W", 12.5),
    ("1.5e3\n", "mW", 1.5),
])
def test_meter_reads_the_first_number_of_the_last_line(text, unit, watts):
    assert parsers.parse_meter(text, unit).total_w == pytest.approx(watts)


def test_meter_without_a_number_is_an_error():
    with pytest.raises(PowerError, match="printed no number"):
        parsers.parse_meter("device not connected\n", "W")
