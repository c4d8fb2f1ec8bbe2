"""Original Llama checkpoints (Meta `.pth`, Hugging Face safetensors) to quantized GGUF, without PyTorch.

`pipeline.convert_checkpoint` is the entry point; the other modules are its stages.
"""
