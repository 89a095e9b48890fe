"""One reading of a host with psutil, as FunkLoad's monitor plugins named it.

Values are strings, as in FunkLoad's ``<monitor>`` records, so the report
reads a sample of Marteau's agent, of FunkLoad's server or of an old result
file alike. Counters stay counters (the report derives rates from deltas):

* ``MonitorCPU``: ``CPUTotalJiffies`` (busy: user, nice, system, irq, softirq,
  steal) and ``IDLTotalJiffies`` (idle and iowait), in 1/100 s as
  ``/proc/stat``'s; ``loadAvg1min``/``5min``/``15min``; ``cpus`` (Marteau's).
* ``MonitorMemFree``: ``memTotal``, ``memFree``, ``swapTotal``, ``swapFree``,
  ``buffers``, ``cached`` in kB.
* ``MonitorNetwork``: ``receiveBytes``, ``receivePackets``, ``transmitBytes``,
  ``transmitPackets`` of the conf's ``interface``, or of every interface but
  the loopback when none is named.
* ``MonitorDisk`` (Marteau's): ``diskReadBytes``, ``diskWriteBytes``,
  ``diskReads``, ``diskWrites`` of every disk.
* ``MonitorCUs``: nothing: the users come from each record's key.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from marteau.errors import MarteauError

PLUGINS = ("MonitorCPU", "MonitorMemFree", "MonitorNetwork", "MonitorDisk", "MonitorCUs")
JIFFIES = 100  # USER_HZ: FunkLoad's counters were /proc/stat's ticks


def _psutil() -> Any:
    try:
        import psutil
    except ImportError:
        raise MarteauError("the monitor needs psutil: pip install 'marteau[monitor]'") from None
    return psutil


def check_plugins(names: Iterable[str], where: str) -> list[str]:
    """`names` if each is a known plugin; MarteauError naming `where` and the stranger."""
    names = list(names)
    unknown = [name for name in names if name not in PLUGINS]
    if unknown:
        raise MarteauError(
            f"{where}: unknown monitor plugin {', '.join(unknown)} (known: {', '.join(PLUGINS)})"
        )
    return names


class Sampler:
    """Reads the host; built once (the interface is checked then), called every interval."""

    def __init__(self, plugins: Iterable[str] = PLUGINS, interface: str | None = None) -> None:
        self.psutil = _psutil()
        self.plugins = frozenset(plugins)
        self.interface = interface or None
        if self.interface and "MonitorNetwork" in self.plugins:
            known = self.psutil.net_io_counters(pernic=True)
            if self.interface not in known:
                raise MarteauError(
                    f"network interface {self.interface!r} not found "
                    f"(this host has: {', '.join(sorted(known))})"
                )
        self.cpus = self.psutil.cpu_count() or 1

    def sample(self, host: str) -> dict[str, str]:
        """``time`` (epoch seconds), ``host`` and the plugins' values."""
        values = {"time": repr(time.time()), "host": host}
        if "MonitorCPU" in self.plugins:
            values.update(self._cpu())
        if "MonitorMemFree" in self.plugins:
            values.update(self._memory())
        if "MonitorNetwork" in self.plugins:
            values.update(self._network())
        if "MonitorDisk" in self.plugins:
            values.update(self._disk())
        return values

    def _cpu(self) -> dict[str, str]:
        times = self.psutil.cpu_times()._asdict()
        busy = sum(times.get(k, 0.0) for k in ("user", "nice", "system", "irq", "softirq", "steal"))
        idle = times.get("idle", 0.0) + times.get("iowait", 0.0)
        one, five, fifteen = self.psutil.getloadavg()
        return {
            "CPUTotalJiffies": str(int(busy * JIFFIES)),
            "IDLTotalJiffies": str(int(idle * JIFFIES)),
            "loadAvg1min": f"{one:.2f}",
            "loadAvg5min": f"{five:.2f}",
            "loadAvg15min": f"{fifteen:.2f}",
            "cpus": str(self.cpus),
        }

    def _memory(self) -> dict[str, str]:
        memory = self.psutil.virtual_memory()
        swap = self.psutil.swap_memory()
        return {
            "memTotal": str(memory.total // 1024),
            "memFree": str(memory.free // 1024),
            "swapTotal": str(swap.total // 1024),
            "swapFree": str(swap.free // 1024),
            "buffers": str(getattr(memory, "buffers", 0) // 1024),
            "cached": str(getattr(memory, "cached", 0) // 1024),
        }

    def _network(self) -> dict[str, str]:
        counters = self.psutil.net_io_counters(pernic=True)
        if self.interface:
            chosen = [counters[self.interface]] if self.interface in counters else []
        else:
            chosen = [c for name, c in counters.items() if not name.startswith("lo")]
        return {
            "receiveBytes": str(sum(c.bytes_recv for c in chosen)),
            "receivePackets": str(sum(c.packets_recv for c in chosen)),
            "transmitBytes": str(sum(c.bytes_sent for c in chosen)),
            "transmitPackets": str(sum(c.packets_sent for c in chosen)),
        }

    def _disk(self) -> dict[str, str]:
        disk = self.psutil.disk_io_counters(perdisk=False)
        if disk is None:  # no disk statistics (some containers)
            return {}
        return {
            "diskReadBytes": str(disk.read_bytes),
            "diskWriteBytes": str(disk.write_bytes),
            "diskReads": str(disk.read_count),
            "diskWrites": str(disk.write_count),
        }
