from llm_router_server.cli.commands import main

raise SystemExit(main())
