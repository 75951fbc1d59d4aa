"""`python -m bot`, and the `sabot` command."""

import gc


def main() -> None:
    # The collector is off while the process starts: the imports and the app build about
    # 180,000 objects that live as long as the process, and collecting among them as they come
    # took a sixth of start-up. `sabot serve`, `worker` and `socket` turn it back on once started
    # (bot.process.assembly.settle_heap), every other command at once (bot.cli.main.main).
    gc.disable()
    from bot.cli.main import main as run

    run()


if __name__ == "__main__":
    main()
