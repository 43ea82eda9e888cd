"""Recruiting's domain: resumes, staged questions, interview instructions and usage arithmetic.

Nothing here imports grpc, sqlalchemy or openai: it is plain data and the rules about it.
"""
