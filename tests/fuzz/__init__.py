"""The fuzz harness of altlink: mutations of real objects, images and manifests run through
``altlink.cli.main``. ``python -m tests.fuzz.fuzz --seconds N --seed S``; see docs/fuzzing.md."""
