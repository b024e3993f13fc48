"""Weight files: reading .pth/.npz/.safetensors safely, the authors' key layout, VGG19, the export format."""
