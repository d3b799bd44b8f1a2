"""Runs a notebook-style snippet (top-level ``async for`` / ``await`` allowed),
as the LangChain guide's cells are written: python run_snippet.py async_stream.py"""

import ast
import asyncio
import sys
import types

path = sys.argv[1]
with open(path, encoding="utf-8") as f:
    source = f.read()
code = compile(source, path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
module = types.ModuleType("__main__")
module.__file__ = path
result = eval(code, module.__dict__)
if asyncio.iscoroutine(result):
    asyncio.run(result)
