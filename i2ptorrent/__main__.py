from i2ptorrent.cli import main

raise SystemExit(main())
