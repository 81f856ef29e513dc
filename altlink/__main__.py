from altlink.masquerade import run

run()
