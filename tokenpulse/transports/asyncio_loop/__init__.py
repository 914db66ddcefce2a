"""transports/asyncio_loop"""
