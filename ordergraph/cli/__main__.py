from ordergraph.cli import main

raise SystemExit(main())
