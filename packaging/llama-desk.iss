; Inno Setup script for Llama Desk on Windows: installs the PyInstaller onedir (build\dist\llama-desk)
; to Program Files with Start menu and optional desktop shortcuts.
;   iscc /DAppVersion=0.1.0 /DVariant=cpu packaging\llama-desk.iss   -> build\llama-desk-0.1.0-cpu-setup.exe
; Silent install (CI smoke test): llama-desk-...-setup.exe /VERYSILENT /SUPPRESSMSGBOXES /NORESTART
; Uninstalling removes the program only: models and chats stay in %LOCALAPPDATA%\llama-desk.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef Variant
  #define Variant "cpu"
#endif

[Setup]
AppId={{6F0B3C0E-2B7A-4C1E-9A55-4C1B0D7A9E21}
AppName=Llama Desk
AppVersion={#AppVersion}
AppPublisher=Llama Desk
DefaultDirName={autopf}\Llama Desk
DefaultGroupName=Llama Desk
DisableProgramGroupPage=yes
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\build
OutputBaseFilename=llama-desk-{#AppVersion}-{#Variant}-setup
SetupIconFile=llama-desk.ico
UninstallDisplayIcon={app}\llama-desk.exe
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "..\build\dist\llama-desk\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Llama Desk"; Filename: "{app}\llama-desk.exe"
Name: "{autodesktop}\Llama Desk"; Filename: "{app}\llama-desk.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\llama-desk.exe"; Description: "{cm:LaunchProgram,Llama Desk}"; Flags: nowait postinstall skipifsilent
