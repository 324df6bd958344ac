"""The embedded offline corpus: the knowledge table's phrasing and the ChatDoctor/WikiDoc-style rows."""
