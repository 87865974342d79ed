from k3dtui.cli import main

raise SystemExit(main())
