"""radpath's knowledge and decisions, without I/O: the vocabulary, the anatomy master,
series selection and pairing rules, SEG geometry and description, slide linkage, the
link object's content. Nothing here reads a file other than its own knowledge data,
talks to a server or runs a program."""
