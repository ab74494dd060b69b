from riskwatch.cli import main

raise SystemExit(main())
