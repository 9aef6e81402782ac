"""python -m host_tools <command> [options]

Commands:
  sim          run the firmware on the host with the simulated board
  csms         run the development central system
  devsim       the development CSMS plus one simulated charger connected to it (make sim)
  gen-schemas  regenerate the firmware's OCPP validation tables from the official schemas
  bench        run the benchmarks (make bench)
  fuzz         seeded fuzz run of the OCPP and HTTP surfaces (make fuzz SECONDS=...)
  image        build the device bundle and filesystem image (make image)
  flash        write MicroPython and the filesystem image to a board with esptool (make flash)
  deploy       bring a board's files up to date with mpremote, plus Wi-Fi and settings (make deploy)
  config       read or change a connected board's settings: config PORT get [KEY ...] | set KEY=JSON ...
  monitor      the board's serial log with host timestamps, OCPP frames compact (make monitor)
"""
import importlib
import sys

COMMANDS = {
    "sim": "host_tools.sim",
    "csms": "host_tools.csms",
    "devsim": "host_tools.devsim",
    "gen-schemas": "host_tools.gen_schemas",
    "bench": "host_tools.bench",
    "fuzz": "host_tools.fuzz",
    "image": "host_tools.image",
    "flash": "host_tools.flash",
    "deploy": "host_tools.deploy",
    "config": "host_tools.config",
    "monitor": "host_tools.monitor",
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    mod = importlib.import_module(COMMANDS[argv[0]])
    return mod.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
