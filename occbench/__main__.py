from occbench.cli import main

raise SystemExit(main())
