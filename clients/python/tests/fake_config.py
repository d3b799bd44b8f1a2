"""The chatwire config the tests serve: scripted fake models (`[fake.scripts.NAME]`
is model `fake:NAME`, whatever the prompt). A script is the model's decision;
everything between it and LangChain (request building, the Stream / Invoke RPCs,
tool-call fragments, usage, stop reasons) is the real code under test."""

FAKE_CONFIG = r'''
# The client's own retries are under test: the server does not retry the fakes' 429s.
[retry]
max_retries = 0

[fake.scripts.magic]
id = "msg_magic"
chunks = [
  { toolCall = { index = 0, id = "call_magic", name = "magic_function", arguments = "{\"inp" } },
  { toolCall = { index = 0, arguments = "ut\": 3}" } },
]
usage = { inputTokens = 20, outputTokens = 7, totalTokens = 27 }
stopReason = "tool_use"

[fake.scripts.magic_noargs]
id = "msg_magic_noargs"
chunks = [ { toolCall = { index = 0, id = "call_noargs", name = "magic_function_no_args", arguments = "{}" } } ]
usage = { inputTokens = 18, outputTokens = 5, totalTokens = 23 }
stopReason = "tool_use"

[fake.scripts.greeting]
id = "msg_greeting"
chunks = [ { toolCall = { index = 0, id = "call_greet", name = "greeting_generator", arguments = "{\"answer_style\": \"pirate\"}" } } ]
stopReason = "tool_use"

[fake.scripts.weather]
id = "msg_weather"
chunks = [
  { text = "Let me check." },
  { toolCall = { index = 0, id = "call_weather", name = "get_weather", arguments = "{\"location\": " } },
  { toolCall = { index = 0, arguments = "\"San Francisco, CA\"}" } },
]
usage = { inputTokens = 12, outputTokens = 9, totalTokens = 21 }
stopReason = "tool_use"

[fake.scripts.unicode]
id = "msg_unicode"
chunks = [
  { toolCall = { index = 0, id = "call_uni", name = "unicode_customer", arguments = "{\"customer_name\": \"你好啊集团 / こんにち" } },
  { toolCall = { index = 0, arguments = "は株式会社\", \"description\": \"技术公司\"}" } },
]
stopReason = "tool_use"

[fake.scripts.joke]
id = "msg_joke"
chunks = [
  { text = "{\"setup\": \"Why did the cat sit on the computer?\", " },
  { text = "\"punchline\": \"To keep an eye on the mouse.\"}" },
]
usage = { inputTokens = 15, outputTokens = 20, totalTokens = 35 }

[fake.scripts.usage]
id = "msg_usage"
chunks = [
  { reasoning = { text = "Counting tokens.", signature = "sig-usage" } },
  { text = "Done." },
]
usage = { inputTokens = 100, outputTokens = 30, totalTokens = 130, cacheReadTokens = 60, cacheCreationTokens = 20, reasoningTokens = 12 }
stopReason = "end_turn"

[fake.scripts.thinking]
id = "msg_thinking"
chunks = [
  { reasoning = { text = "The user wants " } },
  { reasoning = { text = "a greeting." } },
  { reasoning = { signature = "EqQBCkYIBxgCKkA" } },
  { text = "Hello" },
  { text = " there!" },
  { toolCall = { index = 0, id = "toolu_1", name = "get_weather", arguments = "{\"location\"" } },
  { toolCall = { index = 0, arguments = ": \"Paris\"}" } },
]
usage = { inputTokens = 50, outputTokens = 40, totalTokens = 90, cacheReadTokens = 30, cacheCreationTokens = 10, reasoningTokens = 15 }
stopReason = "tool_use"

[fake.scripts.overloaded]
chunks = [ { text = "never" } ]
fail = { afterChunks = 0, httpStatus = 429, retryAfterSecs = 7, message = "slow down" }

[fake.scripts.cut]
chunks = [ { text = "Hel" }, { text = "lo" } ]
fail = { afterChunks = 2, code = "UNAVAILABLE", message = "upstream went away" }
'''
