from cxstream.cli import main

raise SystemExit(main())
