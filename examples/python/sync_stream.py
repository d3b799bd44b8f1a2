from chatwire.langchain import ChatChatwire

chat = ChatChatwire(model="anthropic:claude-3-haiku-20240307")
for chunk in chat.stream("Write me a 1 verse song about goldfish on the moon"):
    print(chunk.content, end="|", flush=True)
