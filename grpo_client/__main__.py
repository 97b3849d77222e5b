from grpo_client.cli import main

raise SystemExit(main())
