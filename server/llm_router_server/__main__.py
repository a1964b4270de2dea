from llm_router_server.cli import main

raise SystemExit(main())
