from gesturelab.cli import main

raise SystemExit(main())
