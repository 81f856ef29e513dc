from altlink.cli import run

run()
